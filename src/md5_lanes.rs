//! MD5 of `N` independent messages at once, in plain safe Rust.
//!
//! One MD5 is a chain of 64 dependent steps, so a single hash leaves most of a core idle. The
//! window search hashes up to 37 independent messages, so here every state word is an array
//! with one entry per message ("lane") and every step is applied to all lanes in one loop: the
//! compiler turns those loops into SSE2 (the x86-64 baseline, 4 lanes per register, no
//! `target-feature` needed) and interleaves the registers, so one lane's latency is hidden
//! behind the others'. `benches/md5.rs` measures the lane counts against sequential `md-5`.
//!
//! Lanes may differ in length, also in block count: every lane runs as many blocks as the
//! longest, and a lane whose message has ended keeps its state through the extra blocks by a
//! masked (branch-free) update.

use zeroize::{Zeroize, Zeroizing};

/// The lane count the engine hashes with, chosen by `cargo bench --bench md5` (see there).
pub const LANES: usize = 8;

const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Sine-derived constants of RFC 1321, one per step.
const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// One 32-bit word of every lane.
type Word<const N: usize> = [u32; N];

/// MD5 of `N` messages; lane `i`'s message is the concatenation of the slices in `messages[i]`
/// (so a caller can hash `prefix ‖ key` without copying both into one buffer first).
///
/// The digests are wiped when the caller drops them, as are the blocks and states used here.
pub fn digest<const N: usize>(messages: &[&[&[u8]]; N]) -> Zeroizing<[[u8; 16]; N]> {
    let mut lengths = [0usize; N];
    for (length, parts) in lengths.iter_mut().zip(messages) {
        *length = parts.iter().map(|part| part.len()).sum();
    }
    // A message of `len` bytes, its 0x80 byte and its 8-byte length fill this many blocks.
    let blocks = lengths.map(blocks_for);
    let most = blocks.iter().copied().max().unwrap_or(0);

    let mut state: Zeroizing<[Word<N>; 4]> = Zeroizing::new(INIT.map(|word| [word; N]));
    let mut words: Zeroizing<[Word<N>; 16]> = Zeroizing::new([[0; N]; 16]);
    for index in 0..most {
        for lane in 0..N {
            fill_block(&mut words, lane, messages[lane], lengths[lane], index);
        }
        // Lanes whose message has ended keep their digest.
        let keep = blocks.map(|count| u32::from(index >= count).wrapping_neg());
        compress(&mut state, &words, &keep);
    }

    output(&state)
}

/// MD5 of `prefixes[i] ‖ suffix` for every lane `i`: the shape of the mOTP messages, where only
/// the step's digits differ between lanes.
///
/// When every prefix has the same length (all the steps of a batch have as many digits, the
/// usual case), the blocks are built once and each lane only rewrites the words its prefix
/// covers, in registers; filling every lane's block byte by byte cost as much as the hashing
/// itself. Otherwise (a batch that crosses a power of ten) this is [`digest`].
pub fn digest_prefixed<const N: usize>(
    prefixes: &[&[u8]; N],
    suffix: &[u8],
) -> Zeroizing<[[u8; 16]; N]> {
    let prefix_len = prefixes.first().map_or(0, |p| p.len());
    if prefixes.iter().any(|p| p.len() != prefix_len) {
        let parts: [[&[u8]; 2]; N] = std::array::from_fn(|lane| [prefixes[lane], suffix]);
        let lanes: [&[&[u8]]; N] = std::array::from_fn(|lane| &parts[lane][..]);
        return digest(&lanes);
    }
    let len = prefix_len + suffix.len();
    let first = [prefixes.first().copied().unwrap_or_default(), suffix];
    let mut state: Zeroizing<[Word<N>; 4]> = Zeroizing::new(INIT.map(|word| [word; N]));
    let mut template: Zeroizing<[Word<1>; 16]> = Zeroizing::new([[0; 1]; 16]);
    let mut words: Zeroizing<[Word<N>; 16]> = Zeroizing::new([[0; N]; 16]);
    for index in 0..blocks_for(len) {
        fill_block(&mut template, 0, &first, len, index);
        for (word, shared) in words.iter_mut().zip(template.iter()) {
            *word = [shared[0]; N];
        }
        // The prefix starts the message, so its bytes in this block start on a word boundary.
        let start = (index * 64).min(prefix_len);
        let end = (index * 64 + 64).min(prefix_len);
        let mut base = [0u32; 16];
        for (word, bytes) in base.iter_mut().zip(first[0][start..end].chunks(4)) {
            *word = le_word(bytes);
        }
        // Why XOR works: each byte of a word sits in its own 8 bits, and the template's
        // prefix bytes are lane 0's. XORing out lane 0's prefix bytes (`base`, zero where the
        // prefix has ended) and XORing in this lane's, at the same positions (equal lengths),
        // leaves exactly this lane's bytes, including the suffix or padding bytes that share
        // the prefix's last word.
        for (lane, prefix) in prefixes.iter().enumerate() {
            for (w, bytes) in prefix[start..end].chunks(4).enumerate() {
                words[w][lane] ^= le_word(bytes) ^ base[w];
            }
        }
        base.zeroize();
        compress(&mut state, &words, &[0; N]);
    }
    output(&state)
}

/// Spends the work of `blocks` more MD5 blocks in each of `N` lanes, with nothing to show for
/// it: the compression function on a zero block, every lane keeping its state. Used to make a
/// short message cost what a longer one does.
pub fn burn_blocks<const N: usize>(blocks: usize) {
    let mut state: [Word<N>; 4] = INIT.map(|word| [word; N]);
    let words: [Word<N>; 16] = [[0; N]; 16];
    // Opaque to the optimiser: with a known all-ones mask it could drop the whole compression.
    let keep: Word<N> = std::hint::black_box([u32::MAX; N]);
    for _ in 0..blocks {
        compress(&mut state, std::hint::black_box(&words), &keep);
        state = std::hint::black_box(state);
    }
}

/// How many 64-byte blocks MD5 compresses for a message of `len` bytes (with its 0x80 byte and
/// its 8-byte length).
pub const fn blocks_for(len: usize) -> usize {
    (len + 8) / 64 + 1
}

/// Up to 4 bytes as the low end of a little-endian word.
#[inline(always)]
fn le_word(bytes: &[u8]) -> u32 {
    match <[u8; 4]>::try_from(bytes) {
        Ok(whole) => u32::from_le_bytes(whole),
        Err(_) => bytes
            .iter()
            .rev()
            .fold(0, |word, &byte| (word << 8) | u32::from(byte)),
    }
}

fn output<const N: usize>(state: &[Word<N>; 4]) -> Zeroizing<[[u8; 16]; N]> {
    let mut out = Zeroizing::new([[0u8; 16]; N]);
    for (lane, digest) in out.iter_mut().enumerate() {
        for (chunk, word) in digest.chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word[lane].to_le_bytes());
        }
    }
    out
}

/// Writes block `index` of one lane's padded message (`parts` concatenated, `len` bytes in all)
/// into that lane of `words`: message bytes, then 0x80, zeros, and the bit length in the last 8
/// bytes of the last block. Past the last block it writes zeros (the lane's update is masked
/// off then).
///
/// The words are assembled directly, with whole-word stores where the message allows: going
/// through a byte buffer read back as words right after the bytes were written stalls on
/// store-to-load forwarding, and wiping a byte buffer costs a store per byte.
fn fill_block<const N: usize>(
    words: &mut [Word<N>; 16],
    lane: usize,
    parts: &[&[u8]],
    len: usize,
    index: usize,
) {
    for word in words.iter_mut() {
        word[lane] = 0;
    }
    let start = index * 64;
    let end = start + 64;
    let mut at = 0;
    for part in parts {
        let (from, to) = (at.max(start), (at + part.len()).min(end));
        if from < to {
            put(words, lane, from - start, &part[from - at..to - at]);
        }
        at += part.len();
    }
    if (start..end).contains(&len) {
        put_byte(words, lane, len - start, 0x80);
    }
    if index == (len + 8) / 64 {
        let bits = (len as u64).wrapping_mul(8);
        words[14][lane] = bits as u32;
        words[15][lane] = (bits >> 32) as u32;
    }
}

/// Puts `data` at byte `offset` of the lane's block (the bytes there are still zero).
fn put<const N: usize>(words: &mut [Word<N>; 16], lane: usize, mut offset: usize, data: &[u8]) {
    let head = ((4 - offset % 4) % 4).min(data.len());
    let (head, body) = data.split_at(head);
    for &byte in head {
        put_byte(words, lane, offset, byte);
        offset += 1;
    }
    let mut chunks = body.chunks_exact(4);
    for chunk in &mut chunks {
        words[offset / 4][lane] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        offset += 4;
    }
    for &byte in chunks.remainder() {
        put_byte(words, lane, offset, byte);
        offset += 1;
    }
}

fn put_byte<const N: usize>(words: &mut [Word<N>; 16], lane: usize, offset: usize, byte: u8) {
    words[offset / 4][lane] |= u32::from(byte) << (8 * (offset % 4));
}

#[inline(always)]
fn round_f(b: u32, c: u32, d: u32) -> u32 {
    d ^ (b & (c ^ d))
}

#[inline(always)]
fn round_g(b: u32, c: u32, d: u32) -> u32 {
    c ^ (d & (b ^ c))
}

#[inline(always)]
fn round_h(b: u32, c: u32, d: u32) -> u32 {
    b ^ c ^ d
}

#[inline(always)]
fn round_i(b: u32, c: u32, d: u32) -> u32 {
    c ^ (b | !d)
}

/// The MD5 compression function on every lane whose `keep` mask is 0; lanes with an all-ones
/// mask keep their state.
///
/// Written as scalar MD5 inside a loop over the lanes, on purpose: LLVM's loop vectoriser widens
/// the whole 64-step body (4 lanes per SSE2 register), whereas 64 separate per-step lane loops
/// are left to the SLP vectoriser, which gives up on a dependency chain this deep and emits
/// scalar code. The body runs `chains` lanes side by side, step by step, so that after
/// vectorising there are that many independent register chains in flight: one chain alone
/// waits on its own latency at every step.
#[inline(always)]
fn compress<const N: usize>(state: &mut [Word<N>; 4], m: &[Word<N>; 16], keep: &Word<N>) {
    const MAX_CHAINS: usize = 4;
    let chains = match (N / 4).clamp(1, MAX_CHAINS) {
        c if (N / c) * c == N => c,
        _ => 1,
    };
    let stride = N / chains;
    for first in 0..stride {
        let lane = |chain: usize| first + chain * stride;
        let mut a = [0u32; MAX_CHAINS];
        let mut b = [0u32; MAX_CHAINS];
        let mut c = [0u32; MAX_CHAINS];
        let mut d = [0u32; MAX_CHAINS];
        for j in 0..chains {
            a[j] = state[0][lane(j)];
            b[j] = state[1][lane(j)];
            c[j] = state[2][lane(j)];
            d[j] = state[3][lane(j)];
        }
        let (a0, b0, c0, d0) = (a, b, c, d);
        macro_rules! step {
            ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $w:expr, $s:expr) => {
                for j in 0..chains {
                    $a[j] = $b[j].wrapping_add(
                        $a[j]
                            .wrapping_add($f($b[j], $c[j], $d[j]))
                            .wrapping_add(K[$i])
                            .wrapping_add(m[$w][lane(j)])
                            .rotate_left($s),
                    );
                }
            };
        }
        macro_rules! four {
            ($f:ident, $i:expr, $w:expr, $s:expr) => {
                step!($f, a, b, c, d, $i, $w[0], $s[0]);
                step!($f, d, a, b, c, $i + 1, $w[1], $s[1]);
                step!($f, c, d, a, b, $i + 2, $w[2], $s[2]);
                step!($f, b, c, d, a, $i + 3, $w[3], $s[3]);
            };
        }
        const S1: [u32; 4] = [7, 12, 17, 22];
        const S2: [u32; 4] = [5, 9, 14, 20];
        const S3: [u32; 4] = [4, 11, 16, 23];
        const S4: [u32; 4] = [6, 10, 15, 21];
        four!(round_f, 0, [0, 1, 2, 3], S1);
        four!(round_f, 4, [4, 5, 6, 7], S1);
        four!(round_f, 8, [8, 9, 10, 11], S1);
        four!(round_f, 12, [12, 13, 14, 15], S1);
        four!(round_g, 16, [1, 6, 11, 0], S2);
        four!(round_g, 20, [5, 10, 15, 4], S2);
        four!(round_g, 24, [9, 14, 3, 8], S2);
        four!(round_g, 28, [13, 2, 7, 12], S2);
        four!(round_h, 32, [5, 8, 11, 14], S3);
        four!(round_h, 36, [1, 4, 7, 10], S3);
        four!(round_h, 40, [13, 0, 3, 6], S3);
        four!(round_h, 44, [9, 12, 15, 2], S3);
        four!(round_i, 48, [0, 7, 14, 5], S4);
        four!(round_i, 52, [12, 3, 10, 1], S4);
        four!(round_i, 56, [8, 15, 6, 13], S4);
        four!(round_i, 60, [4, 11, 2, 9], S4);
        for j in 0..chains {
            let k = keep[lane(j)];
            state[0][lane(j)] = (a0[j] & k) | (a0[j].wrapping_add(a[j]) & !k);
            state[1][lane(j)] = (b0[j] & k) | (b0[j].wrapping_add(b[j]) & !k);
            state[2][lane(j)] = (c0[j] & k) | (c0[j].wrapping_add(c[j]) & !k);
            state[3][lane(j)] = (d0[j] & k) | (d0[j].wrapping_add(d[j]) & !k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    fn reference(parts: &[&[u8]]) -> [u8; 16] {
        let mut hasher = Md5::new();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// xorshift64*: reproducible test data without another dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Hashes `lanes` messages (each split in two at a random point) with `N` lanes and checks
    /// every lane against `md-5`.
    fn check<const N: usize>(messages: &[Vec<u8>; N], rng: &mut Rng) {
        let cuts: [usize; N] = std::array::from_fn(|i| rng.below(messages[i].len() + 1));
        let parts: [[&[u8]; 2]; N] = std::array::from_fn(|i| {
            let (head, tail) = messages[i].split_at(cuts[i]);
            [head, tail]
        });
        let lanes: [&[&[u8]]; N] = std::array::from_fn(|i| &parts[i][..]);
        let ours = digest(&lanes);
        for (lane, message) in messages.iter().enumerate() {
            assert_eq!(
                ours[lane],
                reference(&[message]),
                "lane {lane} of {N}, {} bytes",
                message.len()
            );
        }
    }

    fn random_lengths<const N: usize>(rng: &mut Rng, rounds: usize) {
        for _ in 0..rounds {
            let messages: [Vec<u8>; N] = std::array::from_fn(|_| {
                let len = rng.below(201);
                rng.bytes(len)
            });
            check(&messages, rng);
        }
    }

    #[test]
    fn every_length_up_to_200_in_every_lane() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for len in 0..=200 {
            let messages: [Vec<u8>; LANES] = std::array::from_fn(|_| rng.bytes(len));
            check(&messages, &mut rng);
        }
    }

    #[test]
    fn mixed_lengths_within_a_batch() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        random_lengths::<1>(&mut rng, 300);
        random_lengths::<2>(&mut rng, 300);
        random_lengths::<4>(&mut rng, 300);
        random_lengths::<8>(&mut rng, 300);
        random_lengths::<16>(&mut rng, 100);
        random_lengths::<LANES>(&mut rng, 300);
    }

    /// `digest_prefixed` against `md-5`, with equal and with mixed prefix lengths.
    fn check_prefixed<const N: usize>(prefixes: &[Vec<u8>; N], suffix: &[u8]) {
        let refs: [&[u8]; N] = std::array::from_fn(|i| &prefixes[i][..]);
        let ours = digest_prefixed(&refs, suffix);
        for (lane, prefix) in prefixes.iter().enumerate() {
            assert_eq!(
                ours[lane],
                reference(&[prefix, suffix]),
                "lane {lane} of {N}, {} + {} bytes",
                prefix.len(),
                suffix.len()
            );
        }
    }

    #[test]
    fn prefixed_equal_and_mixed_prefix_lengths() {
        let mut rng = Rng(7);
        for suffix_len in 0..=200 {
            let suffix = rng.bytes(suffix_len);
            let same = rng.below(70);
            let equal: [Vec<u8>; LANES] = std::array::from_fn(|_| rng.bytes(same));
            check_prefixed(&equal, &suffix);
            let mixed: [Vec<u8>; LANES] = std::array::from_fn(|_| {
                let len = rng.below(70);
                rng.bytes(len)
            });
            check_prefixed(&mixed, &suffix);
            let four: [Vec<u8>; 4] = std::array::from_fn(|_| rng.bytes(same));
            check_prefixed(&four, &suffix);
        }
        // Step digits around a power of ten: 9 and 10 digits in one batch.
        let steps: [Vec<u8>; 8] =
            std::array::from_fn(|i| (999_999_996 + i as i64).to_string().into_bytes());
        check_prefixed(&steps, b"0123456789abcdef1234");
    }

    #[test]
    fn block_boundaries_next_to_each_other() {
        // 55 bytes fit one block with padding, 56 need two; 119/120 likewise for three.
        let mut rng = Rng(42);
        for lens in [
            [55, 56, 0, 64, 119, 120, 9, 29],
            [29, 30, 63, 64, 65, 127, 128, 1],
        ] {
            let messages: [Vec<u8>; 8] = lens.map(|len| rng.bytes(len));
            check(&messages, &mut rng);
        }
    }

    #[test]
    fn the_rfc_1321_vectors() {
        let vectors: [(&[u8], &str); 4] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        let singles: [[&[u8]; 1]; 4] = vectors.map(|(m, _)| [m]);
        let lanes: [&[&[u8]]; 4] = std::array::from_fn(|i| &singles[i][..]);
        let ours = digest(&lanes);
        for (lane, (_, hex)) in vectors.iter().enumerate() {
            let got: String = ours[lane].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(&got, hex);
        }
    }
}
