//! The variables OpenVPN passes in `envp` that the plugin reads, picked out of `name=value`
//! entries. Values stay borrowed; [`AuthEnv::to_owned_env`] copies them (the password into a
//! buffer wiped on drop) when a decision is deferred to a worker thread.

use zeroize::Zeroizing;

/// Whether some name in [`WANTED_NAMES`] starts with this byte: most of OpenVPN's env entries
/// are skipped after one load and one table lookup.
pub const WANTED_FIRST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < WANTED_NAMES.len() {
        table[WANTED_NAMES[i][0] as usize] = true;
        i += 1;
    }
    table
};

/// [`WANTED_FIRST_BYTES`] for a plugin that never prompts (`crtext_prompt = false`): it never
/// reads `IV_SSO`, and OpenVPN's many other `IV_*` entries (the client's version and
/// capabilities) are then skipped at their first byte too.
pub const WANTED_FIRST_BYTES_WITHOUT_PROMPT: [bool; 256] = {
    let mut table = WANTED_FIRST_BYTES;
    table[b'I' as usize] = false;
    table
};

/// Every name [`AuthEnv::slot`] knows: the only entries of OpenVPN's env this plugin reads.
pub const WANTED_NAMES: [&[u8]; 10] = [
    b"username",
    b"password",
    b"common_name",
    b"untrusted_ip",
    b"untrusted_ip6",
    b"auth_failed_reason_file",
    b"auth_control_file",
    b"auth_pending_file",
    b"IV_SSO",
    b"crresponse",
];

/// One of [`WANTED_NAMES`], by its place there: what the FFI layer's reader hands
/// [`AuthEnv::offer_wanted`], so a name it has matched is not compared again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Username = 0,
    Password,
    CommonName,
    UntrustedIp,
    UntrustedIp6,
    AuthFailedReasonFile,
    AuthControlFile,
    AuthPendingFile,
    IvSso,
    Crresponse,
}

/// The entries a login without prompts reads (no `crtext_prompt`): once the env reader has
/// met each of them, the rest of the env cannot change the login, since the first occurrence of a
/// name wins and every other name it reads is unused without prompts (`auth_pending_file`,
/// `IV_SSO`, `crresponse`) or read only in the absence of one of these (`untrusted_ip6`).
/// OpenVPN puts these per-login entries first (its env list is newest first), so the reader
/// stops after eight entries of some fifty.
pub const NEEDED_WITHOUT_PROMPT: WantedSet = WantedSet::of(&[
    Wanted::Username,
    Wanted::Password,
    Wanted::CommonName,
    Wanted::UntrustedIp,
    Wanted::AuthControlFile,
    Wanted::AuthFailedReasonFile,
]);

/// A set of [`Wanted`] names, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WantedSet(u16);

impl WantedSet {
    /// No name: a reader told to stop once it has met these reads the whole env.
    pub const NONE: WantedSet = WantedSet(0);

    pub const fn of(names: &[Wanted]) -> WantedSet {
        let mut bits = 0;
        let mut i = 0;
        while i < names.len() {
            bits |= 1 << names[i] as u16;
            i += 1;
        }
        WantedSet(bits)
    }

    pub fn with(self, name: Wanted) -> WantedSet {
        WantedSet(self.0 | 1 << name as u16)
    }

    #[cfg(test)]
    pub fn contains(self, name: Wanted) -> bool {
        self.0 & 1 << name as u16 != 0
    }

    pub fn contains_all(self, other: WantedSet) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }
}

impl Wanted {
    /// Every value, in the order of [`WANTED_NAMES`].
    #[cfg(test)]
    pub const ALL: [Wanted; 10] = [
        Wanted::Username,
        Wanted::Password,
        Wanted::CommonName,
        Wanted::UntrustedIp,
        Wanted::UntrustedIp6,
        Wanted::AuthFailedReasonFile,
        Wanted::AuthControlFile,
        Wanted::AuthPendingFile,
        Wanted::IvSso,
        Wanted::Crresponse,
    ];

    /// The env name, without the `=`.
    pub fn name(self) -> &'static [u8] {
        WANTED_NAMES[self as usize]
    }
}

/// The entries this plugin uses, each the first occurrence of its name.
#[derive(Default, Clone, Copy)]
pub struct AuthEnv<'a> {
    pub username: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub common_name: Option<&'a [u8]>,
    pub untrusted_ip: Option<&'a [u8]>,
    pub untrusted_ip6: Option<&'a [u8]>,
    pub auth_failed_reason_file: Option<&'a [u8]>,
    /// Deferred auth: where the decision goes (`1` or `0` as the first byte).
    pub auth_control_file: Option<&'a [u8]>,
    /// Pending auth (2.6+): where a `CR_TEXT` prompt goes.
    pub auth_pending_file: Option<&'a [u8]>,
    /// The client's `IV_SSO` peer info: the pending-auth methods it supports.
    pub iv_sso: Option<&'a [u8]>,
    /// `OPENVPN_PLUGIN_CLIENT_CRRESPONSE`: the client's answer to a `CR_TEXT` prompt, base64.
    pub crresponse: Option<&'a [u8]>,
}

impl<'a> AuthEnv<'a> {
    /// Reads `name=value` entries; an entry without `=` is ignored, and a value may itself
    /// contain `=` (only the first one separates). For unit tests: `ffi` reads OpenVPN's
    /// envp itself, without measuring the entries it skips.
    #[cfg(test)]
    pub fn parse(entries: impl IntoIterator<Item = &'a [u8]>) -> AuthEnv<'a> {
        let mut env = AuthEnv::default();
        for entry in entries {
            let Some(eq) = entry.iter().position(|&b| b == b'=') else {
                continue;
            };
            env.offer(&entry[..eq], &entry[eq + 1..]);
        }
        env
    }

    /// Which of the entries this plugin reads `name` is, if any (one of [`WANTED_NAMES`]). The
    /// FFI layer matches names itself and hands over a [`Wanted`]; this is the reference its
    /// tests compare it with.
    #[cfg(test)]
    pub fn slot(&mut self, name: &[u8]) -> Option<&mut Option<&'a [u8]>> {
        Some(match name {
            b"username" => &mut self.username,
            b"password" => &mut self.password,
            b"common_name" => &mut self.common_name,
            b"untrusted_ip" => &mut self.untrusted_ip,
            b"untrusted_ip6" => &mut self.untrusted_ip6,
            b"auth_failed_reason_file" => &mut self.auth_failed_reason_file,
            b"auth_control_file" => &mut self.auth_control_file,
            b"auth_pending_file" => &mut self.auth_pending_file,
            b"IV_SSO" => &mut self.iv_sso,
            b"crresponse" => &mut self.crresponse,
            _ => return None,
        })
    }

    /// Records `value` under `name` if the plugin reads that name and it has no value yet
    /// (the first occurrence wins).
    #[cfg(test)]
    pub fn offer(&mut self, name: &[u8], value: &'a [u8]) {
        if let Some(slot) = self.slot(name) {
            if slot.is_none() {
                *slot = Some(value);
            }
        }
    }

    /// The slot of `wanted`: the one [`slot`](Self::slot) gives for its name.
    pub fn slot_of(&mut self, wanted: Wanted) -> &mut Option<&'a [u8]> {
        match wanted {
            Wanted::Username => &mut self.username,
            Wanted::Password => &mut self.password,
            Wanted::CommonName => &mut self.common_name,
            Wanted::UntrustedIp => &mut self.untrusted_ip,
            Wanted::UntrustedIp6 => &mut self.untrusted_ip6,
            Wanted::AuthFailedReasonFile => &mut self.auth_failed_reason_file,
            Wanted::AuthControlFile => &mut self.auth_control_file,
            Wanted::AuthPendingFile => &mut self.auth_pending_file,
            Wanted::IvSso => &mut self.iv_sso,
            Wanted::Crresponse => &mut self.crresponse,
        }
    }

    /// [`offer`](Self::offer) for a name already matched: records `value` unless `wanted`
    /// has a value (the first occurrence wins).
    pub fn offer_wanted(&mut self, wanted: Wanted, value: &'a [u8]) {
        let slot = self.slot_of(wanted);
        if slot.is_none() {
            *slot = Some(value);
        }
    }

    /// Whether the client announced `crtext` in `IV_SSO` (a comma-separated list).
    pub fn supports_crtext(&self) -> bool {
        self.iv_sso
            .is_some_and(|v| v.split(|&b| b == b',').any(|m| m == b"crtext"))
    }

    /// A copy that outlives OpenVPN's call (envp is only valid during it), for a worker
    /// thread. The password and the cr-response are copied into buffers wiped on drop.
    pub fn to_owned_env(self) -> OwnedAuthEnv {
        let copy = |v: Option<&[u8]>| v.map(<[u8]>::to_vec);
        let secret = |v: Option<&[u8]>| v.map(|v| Zeroizing::new(v.to_vec()));
        OwnedAuthEnv {
            username: copy(self.username),
            password: secret(self.password),
            common_name: copy(self.common_name),
            untrusted_ip: copy(self.untrusted_ip),
            untrusted_ip6: copy(self.untrusted_ip6),
            auth_failed_reason_file: copy(self.auth_failed_reason_file),
            auth_control_file: copy(self.auth_control_file),
            auth_pending_file: copy(self.auth_pending_file),
            iv_sso: copy(self.iv_sso),
            crresponse: secret(self.crresponse),
        }
    }

    /// The client's address for log lines (IPv4 or IPv6), or "unknown".
    pub fn client_address(&self) -> String {
        match self.untrusted_ip.or(self.untrusted_ip6) {
            Some(ip) => crate::log::sanitize(&String::from_utf8_lossy(&ip[..ip.len().min(64)])),
            None => "unknown".to_owned(),
        }
    }
}

/// [`AuthEnv`] copied out of OpenVPN's envp; secrets are wiped on drop.
#[derive(Default)]
pub struct OwnedAuthEnv {
    pub username: Option<Vec<u8>>,
    pub password: Option<Zeroizing<Vec<u8>>>,
    pub common_name: Option<Vec<u8>>,
    pub untrusted_ip: Option<Vec<u8>>,
    pub untrusted_ip6: Option<Vec<u8>>,
    pub auth_failed_reason_file: Option<Vec<u8>>,
    pub auth_control_file: Option<Vec<u8>>,
    pub auth_pending_file: Option<Vec<u8>>,
    pub iv_sso: Option<Vec<u8>>,
    pub crresponse: Option<Zeroizing<Vec<u8>>>,
}

impl OwnedAuthEnv {
    pub fn borrow(&self) -> AuthEnv<'_> {
        AuthEnv {
            username: self.username.as_deref(),
            password: self.password.as_deref().map(|v| &v[..]),
            common_name: self.common_name.as_deref(),
            untrusted_ip: self.untrusted_ip.as_deref(),
            untrusted_ip6: self.untrusted_ip6.as_deref(),
            auth_failed_reason_file: self.auth_failed_reason_file.as_deref(),
            auth_control_file: self.auth_control_file.as_deref(),
            auth_pending_file: self.auth_pending_file.as_deref(),
            iv_sso: self.iv_sso.as_deref(),
            crresponse: self.crresponse.as_deref().map(|v| &v[..]),
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
    fn every_wanted_name_has_a_slot_and_nothing_else_does() {
        let mut env = AuthEnv::default();
        for name in WANTED_NAMES {
            assert!(
                env.slot(name).is_some(),
                "{}",
                String::from_utf8_lossy(name)
            );
            assert!(!name.is_empty() && !name.contains(&b'=') && !name.contains(&0));
        }
        for other in [&b"usernam"[..], b"username ", b"Username", b"", b"IV_SSO2"] {
            assert!(env.slot(other).is_none());
        }
        for byte in 0..=255u8 {
            let starts_one = WANTED_NAMES.iter().any(|name| name[0] == byte);
            assert_eq!(WANTED_FIRST_BYTES[usize::from(byte)], starts_one, "{byte}");
            let starts_one_read_without_prompt = WANTED_NAMES
                .iter()
                .any(|name| name[0] == byte && *name != b"IV_SSO");
            assert_eq!(
                WANTED_FIRST_BYTES_WITHOUT_PROMPT[usize::from(byte)],
                starts_one_read_without_prompt,
                "{byte}"
            );
        }
    }

    #[test]
    fn each_wanted_value_names_its_slot() {
        for (i, wanted) in Wanted::ALL.into_iter().enumerate() {
            assert_eq!(wanted as usize, i);
            assert_eq!(wanted.name(), WANTED_NAMES[i]);
            let mut by_name = AuthEnv::default();
            by_name.offer(wanted.name(), b"first");
            by_name.offer(wanted.name(), b"second");
            let mut by_value = AuthEnv::default();
            by_value.offer_wanted(wanted, b"first");
            by_value.offer_wanted(wanted, b"second");
            assert_eq!(*by_value.slot_of(wanted), Some(&b"first"[..]));
            for other in Wanted::ALL {
                assert_eq!(*by_name.slot_of(other), *by_value.slot_of(other));
            }
        }
    }

    #[test]
    fn ipv6_address_is_used_when_there_is_no_ipv4() {
        let env = AuthEnv::parse([&b"untrusted_ip6=::1"[..]]);
        assert_eq!(env.client_address(), "::1");
    }

    #[test]
    fn crtext_support_and_owned_copy() {
        let entries: [&[u8]; 4] = [
            b"IV_SSO=openurl,crtext",
            b"username=alice",
            b"password=123456",
            b"auth_control_file=/tmp/acf",
        ];
        let env = AuthEnv::parse(entries);
        assert!(env.supports_crtext());
        let owned = env.to_owned_env();
        let back = owned.borrow();
        assert_eq!(back.password, Some(&b"123456"[..]));
        assert_eq!(back.auth_control_file, Some(&b"/tmp/acf"[..]));
        assert!(!AuthEnv::parse([&b"IV_SSO=crtextx,webauth"[..]]).supports_crtext());
        assert!(!AuthEnv::default().supports_crtext());
    }
}
