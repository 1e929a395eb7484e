//! Hashes of the secrets a user types besides the one-time code: a static password (typed in
//! front of the code) and one-time recovery codes (typed instead of it). motp.toml stores only
//! these hashes; motpctl makes them, the config loader parses them once, and a login verifies
//! against the parsed form.
//!
//! **Static passwords** are chosen by people, so they get a slow, memory-hard, salted hash:
//! Argon2id (RustCrypto's `argon2`) in PHC string form, the current recommendation (OWASP's
//! Password Storage Cheat Sheet, RFC 9106), with OWASP's parameters m = 19456 KiB, t = 2, p = 1.
//! A hash from another tool is accepted only as argon2id v=19 with 8192 ≤ m ≤ 1 GiB, 1 ≤ t ≤ 10,
//! 1 ≤ p ≤ 16 and m × t ≤ [`MAX_WORK_KIB`] ([`parse_password_hash`]): weaker parameters would
//! make an offline guess cheap, and a config must not be able to make one login cost seconds of
//! a worker thread or a gigabyte per login in flight. One verification costs milliseconds
//! (`benches/secret_hash.rs`, docs/performance.md), so it must never run on OpenVPN's event-loop
//! thread. Its cost depends on the hash's parameters only: the typed password enters Argon2 once,
//! through Blake2b, and the result is compared in constant time. [`dummy_verify`] costs the same
//! as a verification under the default parameters, for a login whose user does not exist or has
//! no password, so timing does not tell which.
//!
//! **Recovery codes** are made by motpctl ([`generate_recovery_codes`]): 12 characters from a
//! 31-character alphabet without the look-alikes 0/o, 1/l/i, about 59.5 bits from the OS random
//! source, shown as `k7m2-q9xp-4tfr`. Guessing one online is hopeless and offline a brute force
//! of 2^59 salted hashes is far beyond reach, so a fast salted hash is enough: `$motp-rc$v=1$<16
//! random salt bytes>$<SHA-256(salt ‖ code)>`, both in unpadded standard base64. Codes imported
//! from pam_google_authenticator (8-digit scratch codes, about 26.6 bits) are much weaker: anyone
//! who reads motp.toml can find them in seconds. That is acceptable only because motp.toml also
//! holds the users' OTP secrets in clear, so it must be readable by root (and the plugin) only in
//! any case; a reader of the file does not need the recovery codes. Every stored hash is compared
//! with the typed code in constant time ([`recovery_match`]), whichever matches.
//!
//! Secrets never reach `Debug`, `Display` or an error message, and the copies this module makes
//! are wiped when dropped (`zeroize`). The parsed hashes are wiped too, since they are what an
//! offline guess would start from.

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

#[cfg(test)]
mod tests;

/// OWASP's Argon2id memory cost, KiB (19 MiB).
pub const DEFAULT_M_KIB: u32 = 19_456;
/// OWASP's Argon2id iterations.
pub const DEFAULT_T: u32 = 2;
/// OWASP's Argon2id lanes.
pub const DEFAULT_P: u32 = 1;
/// The smallest memory cost a stored hash may have, KiB.
pub const MIN_M_KIB: u32 = 8_192;
/// The largest memory cost a stored hash may have, KiB (1 GiB).
pub const MAX_M_KIB: u32 = 1 << 20;
/// The most iterations a stored hash may have.
pub const MAX_T: u32 = 10;
/// The most lanes a stored hash may have (lanes run one after the other here; no tool makes
/// more).
pub const MAX_P: u32 = 16;
/// The most work a stored hash may ask for, m × t in KiB: 1 GiB filled once (or 512 MiB twice,
/// ...), well under a second. The default is 38,912.
pub const MAX_WORK_KIB: u64 = 1 << 20;
/// Salt length of the hashes made here (bytes), both kinds.
const SALT_LEN: usize = 16;
/// Argon2id output length of the hashes made here (bytes).
const OUTPUT_LEN: usize = 32;
/// Shortest Argon2 salt and output accepted from another tool (bytes).
const MIN_SALT_LEN: usize = 8;
const MIN_OUTPUT_LEN: usize = 16;

/// The recovery-code alphabet: digits and lowercase letters without 0, o, 1, l, i.
pub const RECOVERY_ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Characters in a generated recovery code, without its dashes.
pub const RECOVERY_CODE_LEN: usize = 12;
/// Digits in an imported pam_google_authenticator scratch code.
pub const SCRATCH_CODE_LEN: usize = 8;
const RECOVERY_PREFIX: &str = "$motp-rc$v=1$";

/// A stored Argon2id hash, parsed and checked once (at config load): parameters, salt and
/// output. Wiped when dropped; its `Debug` shows the parameters only.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedPasswordHash {
    m_kib: u32,
    t: u32,
    p: u32,
    salt: Zeroizing<Vec<u8>>,
    hash: Zeroizing<Vec<u8>>,
}

impl ParsedPasswordHash {
    /// (m in KiB, t, p).
    pub fn params(&self) -> (u32, u32, u32) {
        (self.m_kib, self.t, self.p)
    }
}

impl fmt::Debug for ParsedPasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ParsedPasswordHash(argon2id m={},t={},p={})",
            self.m_kib, self.t, self.p
        )
    }
}

fn argon2id(m_kib: u32, t: u32, p: u32, output_len: usize) -> Argon2<'static> {
    let params = Params::new(m_kib, t, p, Some(output_len))
        .expect("parameters are checked before use (parse_password_hash, the defaults)");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Fills `buf` from the kernel's random source. Panics if the kernel refuses (getrandom(2)
/// does not fail on Linux once the pool is initialised; a hash without a random salt must not
/// be made).
fn os_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// Hashes a static password with Argon2id (OWASP's parameters, a 16-byte random salt) into the
/// PHC string stored as `password = "..."`.
pub fn hash_password(password: &[u8]) -> String {
    let mut salt = [0u8; SALT_LEN];
    os_random(&mut salt);
    let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
    argon2id(DEFAULT_M_KIB, DEFAULT_T, DEFAULT_P, OUTPUT_LEN)
        .hash_password_into(password, &salt, &mut out[..])
        .expect("a 16-byte salt and a 32-byte output are valid");
    format!(
        "$argon2id$v=19$m={DEFAULT_M_KIB},t={DEFAULT_T},p={DEFAULT_P}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(&out[..])
    )
}

/// Parses a stored `password` value: an Argon2id v=19 PHC string with parameters in bounds
/// (see the module doc). The error says what is wrong without quoting the value.
pub fn parse_password_hash(text: &str) -> Result<ParsedPasswordHash, String> {
    const SHAPE: &str = "must be an Argon2id hash in PHC form \
                         ($argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>), as `motpctl \
                         hash-password` prints it";
    let phc = PasswordHash::new(text).map_err(|_| SHAPE.to_owned())?;
    if phc.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "{SHAPE}; this one is not argon2id (argon2i, argon2d and other algorithms are refused)"
        ));
    }
    if phc.version != Some(19) {
        return Err(format!("{SHAPE}; this one is not version 19 (v=19)"));
    }
    let (mut m, mut t, mut p) = (None, None, None);
    for (name, value) in phc.params.iter() {
        let slot = match name.as_str() {
            "m" => &mut m,
            "t" => &mut t,
            "p" => &mut p,
            _ => {
                return Err(format!(
                    "{SHAPE}; this one has a parameter other than m, t and p"
                ))
            }
        };
        let number = value
            .decimal()
            .map_err(|_| format!("{SHAPE}; its m, t and p must be numbers"))?;
        if slot.replace(number).is_some() {
            return Err(format!("{SHAPE}; this one repeats a parameter"));
        }
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else {
        return Err(format!("{SHAPE}; this one lacks one of m, t, p"));
    };
    if m < MIN_M_KIB || t < 1 || p < 1 {
        return Err(format!(
            "is an Argon2id hash with parameters too weak to store a password: it needs \
             m ≥ {MIN_M_KIB} (KiB), t ≥ 1 and p ≥ 1; make a new one with `motpctl hash-password`"
        ));
    }
    if m > MAX_M_KIB || t > MAX_T || p > MAX_P || u64::from(m) * u64::from(t) > MAX_WORK_KIB {
        return Err(format!(
            "is an Argon2id hash with parameters that would make every login slow: at most \
             m = {MAX_M_KIB} (KiB, 1 GiB), t = {MAX_T}, p = {MAX_P} and m × t = {MAX_WORK_KIB}; \
             make a new one with `motpctl hash-password`"
        ));
    }
    let salt = match &phc.salt {
        Some(salt) if salt.len() >= MIN_SALT_LEN => Zeroizing::new(salt.to_vec()),
        _ => {
            return Err(format!(
                "{SHAPE}; its salt must be at least {MIN_SALT_LEN} bytes"
            ))
        }
    };
    let hash = match &phc.hash {
        Some(hash) if hash.len() >= MIN_OUTPUT_LEN => Zeroizing::new(hash.as_bytes().to_vec()),
        _ => {
            return Err(format!(
                "{SHAPE}; its hash must be at least {MIN_OUTPUT_LEN} bytes"
            ))
        }
    };
    // Params::new checks the rest (m ≥ 8 p); salt and output lengths are within argon2's.
    Params::new(m, t, p, Some(hash.len())).map_err(|_| {
        "is an Argon2id hash with parameters Argon2 refuses (m must be at least 8 × p)".to_owned()
    })?;
    Ok(ParsedPasswordHash {
        m_kib: m,
        t,
        p,
        salt,
        hash,
    })
}

/// Whether `password` is the one `phc` was made from. Costs one Argon2id run with the hash's
/// parameters whatever the password (empty, long, wrong or right), then a constant-time
/// comparison.
pub fn verify_password(phc: &ParsedPasswordHash, password: &[u8]) -> bool {
    let mut out = Zeroizing::new(vec![0u8; phc.hash.len()]);
    let ran = argon2id(phc.m_kib, phc.t, phc.p, phc.hash.len())
        .hash_password_into(password, &phc.salt, &mut out)
        .is_ok();
    // Only a password over 4 GiB fails, and OpenVPN sends at most 4 KiB.
    ran && bool::from(out.ct_eq(&phc.hash))
}

/// Costs what [`verify_password`] costs for a hash made by [`hash_password`] (the default
/// parameters), and verifies nothing: for a user who does not exist or has no password.
pub fn dummy_verify(password: &[u8]) {
    static DUMMY_SALT: [u8; SALT_LEN] = *b"motp-dummy-salt!";
    let mut out = Zeroizing::new(vec![0u8; OUTPUT_LEN]);
    let _ = argon2id(DEFAULT_M_KIB, DEFAULT_T, DEFAULT_P, OUTPUT_LEN).hash_password_into(
        password,
        &DUMMY_SALT,
        &mut out,
    );
    // The same comparison as a verification, so the optimiser cannot drop the work.
    let equal = out.ct_eq(&[0u8; OUTPUT_LEN][..]);
    std::hint::black_box(equal);
}

/// `count` new recovery codes, `xxxx-xxxx-xxxx` from [`RECOVERY_ALPHABET`], each drawn
/// uniformly from the OS random source. Wiped when dropped.
pub fn generate_recovery_codes(count: usize) -> Vec<Zeroizing<String>> {
    (0..count).map(|_| generate_recovery_code()).collect()
}

fn generate_recovery_code() -> Zeroizing<String> {
    let mut code = Zeroizing::new(String::with_capacity(RECOVERY_CODE_LEN + 2));
    let mut pool = Zeroizing::new([0u8; 32]);
    let mut used = pool.len();
    let mut n = 0;
    while n < RECOVERY_CODE_LEN {
        if used == pool.len() {
            os_random(&mut pool[..]);
            used = 0;
        }
        // The low 5 bits, rejecting 31: uniform over the 31 characters.
        let v = usize::from(pool[used] & 0x1f);
        used += 1;
        if v >= RECOVERY_ALPHABET.len() {
            continue;
        }
        if n > 0 && n % 4 == 0 {
            code.push('-');
        }
        code.push(char::from(RECOVERY_ALPHABET[v]));
        n += 1;
    }
    code
}

/// A typed recovery code as it is hashed: lower case, without dashes and spaces; 12 characters
/// of [`RECOVERY_ALPHABET`] (a generated code) or 8 ASCII digits (an imported
/// pam_google_authenticator scratch code). `None` for anything else.
pub fn normalize_recovery_code(typed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(RECOVERY_CODE_LEN));
    for &b in typed {
        if b == b'-' || b == b' ' {
            continue;
        }
        if out.len() == RECOVERY_CODE_LEN {
            return None;
        }
        out.push(b.to_ascii_lowercase());
    }
    let generated = out.len() == RECOVERY_CODE_LEN && out.iter().all(|b| in_alphabet(*b));
    let scratch = out.len() == SCRATCH_CODE_LEN && out.iter().all(u8::is_ascii_digit);
    (generated || scratch).then_some(out)
}

fn in_alphabet(b: u8) -> bool {
    RECOVERY_ALPHABET.contains(&b)
}

fn recovery_digest(salt: &[u8; SALT_LEN], normalized: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(salt)
        .chain_update(normalized)
        .finalize()
        .into()
}

/// The stored form of one recovery code (normalized first, [`normalize_recovery_code`]):
/// `$motp-rc$v=1$<salt>$<SHA-256(salt ‖ code)>` with a new 16-byte random salt.
pub fn hash_recovery_code(normalized: &[u8]) -> String {
    let mut salt = [0u8; SALT_LEN];
    os_random(&mut salt);
    RecoveryHash {
        salt,
        digest: recovery_digest(&salt, normalized),
    }
    .to_stored()
}

/// One stored recovery-code hash, parsed. Wiped when dropped; `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct RecoveryHash {
    salt: [u8; SALT_LEN],
    digest: [u8; 32],
}

impl RecoveryHash {
    /// The text stored in motp.toml (the same text it was parsed from: the encoding is
    /// canonical).
    fn to_stored(&self) -> String {
        format!(
            "{RECOVERY_PREFIX}{}${}",
            STANDARD_NO_PAD.encode(self.salt),
            STANDARD_NO_PAD.encode(self.digest)
        )
    }
}

impl fmt::Debug for RecoveryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryHash(..)")
    }
}

/// Parses one entry of `recovery_codes`. The error does not quote it.
pub fn parse_recovery_hash(text: &str) -> Result<RecoveryHash, String> {
    const SHAPE: &str = "must be a recovery-code hash ($motp-rc$v=1$<salt>$<hash>) as `motpctl \
                         recovery-codes` writes it, not a code";
    let rest = text.strip_prefix(RECOVERY_PREFIX).ok_or(SHAPE)?;
    let (salt, digest) = rest.split_once('$').ok_or(SHAPE)?;
    let mut parsed = RecoveryHash {
        salt: [0; SALT_LEN],
        digest: [0; 32],
    };
    let salt_ok = STANDARD_NO_PAD
        .decode_slice(salt, &mut parsed.salt)
        .is_ok_and(|n| n == SALT_LEN);
    // decode_slice wants room for a whole last group: 32 bytes are 43 characters, 33 slots.
    let mut digest_buf = Zeroizing::new([0u8; 33]);
    let digest_ok = STANDARD_NO_PAD
        .decode_slice(digest, &mut digest_buf[..])
        .is_ok_and(|n| n == 32);
    if !salt_ok || !digest_ok {
        return Err(SHAPE.to_owned());
    }
    parsed.digest.copy_from_slice(&digest_buf[..32]);
    Ok(parsed)
}

/// The index of the stored hash `typed_normalized` (from [`normalize_recovery_code`]) matches,
/// if any. Hashes the code with every salt and compares with every hash in constant time: the
/// time depends on the number of hashes only, not on which one matched or whether one did.
pub fn recovery_match(hashes: &[RecoveryHash], typed_normalized: &[u8]) -> Option<usize> {
    let mut found = Choice::from(0);
    let mut index = 0u64;
    for (i, h) in hashes.iter().enumerate() {
        let mut digest = recovery_digest(&h.salt, typed_normalized);
        let hit = digest.ct_eq(&h.digest) & !found;
        digest.zeroize();
        index.conditional_assign(&(i as u64), hit);
        found |= hit;
    }
    bool::from(found).then_some(index as usize)
}

/// A stable 64-bit id of a set of recovery-code hashes, in order (the first 8 bytes of SHA-256
/// over their stored texts, each followed by a newline): the state store keys the record of used
/// codes by it, so that a new set (`motpctl recovery-codes`) starts with none used.
pub fn recovery_set_id(hashes: &[RecoveryHash]) -> u64 {
    let mut sha = Sha256::new();
    for h in hashes {
        sha.update(h.to_stored().as_bytes());
        sha.update(b"\n");
    }
    let digest: [u8; 32] = sha.finalize().into();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}
